"""The recipe schema. Every key a recipe may hold is declared here, with its default and meaning."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class Section(BaseModel):
    """Base for recipe sections: unknown keys are errors, values are checked strictly."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSection(Section):
    train: str = Field(
        description="Training data: a .jsonl/.csv/.tsv path (.txt or a folder for task pretrain), demo:<file> "
        "or hf:<dataset>[:split]. Pairs (translation), conversations (chat), multiple-choice questions or "
        "question/answer rows (qa), raw text (pretrain)."
    )
    test: str | None = Field(None, description="Held-out test data; when unset, a test split is cut from data.train.")
    general: str | None = Field(None, description="General-domain pairs for the forgetting check.")
    sample: int | None = Field(
        None, gt=0, description="Use a random sample of this many training rows (seeded; before splitting)."
    )
    text_col: str = Field("text", description="Text column of raw-text data (task pretrain).")
    general_text_col: str | None = Field(
        None, description="Text column of data.general for task pretrain (default: data.text_col)."
    )
    system_prompt: str | None = Field(
        None, description="System message added to conversations that have none (tasks chat and qa)."
    )
    glossary: str | None = Field(None, description="Term glossary (columns en/es) for terminology accuracy.")
    src_col: str = Field("en", description="Source-text column.")
    tgt_col: str = Field("es", description="Target-text column.")
    src_lang: str = Field("en", description="Source language code, used in prompts.")
    tgt_lang: str = Field("es", description="Target language code, used in prompts.")
    doc_col: str | None = Field("doc_id", description="Document-id column used by split=document (optional).")
    split: Literal["document", "random"] = Field("document", description="How to cut test/dev splits.")
    test_size: float = Field(0.1, ge=0, lt=1, description="Fraction of data.train held out for testing.")
    dev_size: float = Field(0.05, ge=0, lt=1, description="Fraction held out for dev loss during training.")
    on_bad_rows: Literal["skip", "fail"] = Field("skip", description="Drop bad rows with a report, or stop.")
    max_length_ratio: float = Field(3.0, gt=1, description="Largest allowed source/target length ratio.")
    replay_fraction: float = Field(
        0.0, ge=0, lt=1, description="Share of general-domain pairs mixed into training (from data.replay)."
    )
    replay: str | None = Field(None, description="General-domain pairs for replay (never the data.general eval set).")
    reference_col: str | None = Field(
        None,
        description="pipeline rlaif, task qa: column of data.train holding a reference answer text (e.g. PubMedQA's "
        "long_answer); answers are then free text judged against it (no multiple-choice test). Unset: multiple-"
        "choice questions, answers judged by their option letter.",
    )


class LoraSection(Section):
    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: int = Field(32, gt=0, description="LoRA scaling alpha.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA path (0 is fastest on CPU).")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Module names that get adapters (Marian uses q_proj/k_proj/v_proj/out_proj/fc1/fc2).",
    )


class TrainSection(Section):
    method: Literal["lora", "full"] = Field("lora", description="LoRA adapters or full fine-tuning.")
    objective: Literal["sft", "dpo", "kto"] = Field(
        "sft",
        description="What training optimises: sft (the target tokens' cross-entropy), dpo (preference pairs: "
        "sigmoid loss against the starting model as reference) or kto (each pair unpaired: chosen desirable, "
        "rejected undesirable). dpo/kto train on a preference file (prompt/chosen/rejected) in data.train.",
    )
    beta: float = Field(
        0.1, gt=0, description="DPO/KTO: strength of the pull towards the reference model (higher = stay closer)."
    )
    sft_weight: float = Field(
        0.0,
        ge=0,
        description="DPO: weight of an added SFT loss on the chosen answer (per token), against the drift of "
        "chosen log-probabilities; 0 = pure DPO.",
    )
    kto_desirable_weight: float = Field(1.0, gt=0, description="KTO: loss weight of desirable (chosen) examples.")
    kto_undesirable_weight: float = Field(1.0, gt=0, description="KTO: loss weight of undesirable (rejected) examples.")
    epochs: float = Field(1.0, gt=0, description="Passes over the training data (ignored when max_steps is set).")
    max_steps: int | None = Field(None, gt=0, description="Optimizer steps; overrides epochs.")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate (AdamW, linear warm-up then decay).")
    batch_size: int = Field(8, gt=0, description="Sequences per optimizer step (before accumulation).")
    grad_accum: int = Field(1, gt=0, description="Micro-batches accumulated per optimizer step.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming up the LR.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    max_length: int = Field(256, gt=8, description="Longest training sequence in tokens (longer ones are cut).")
    eval_every: int = Field(50, gt=0, description="Steps between dev-loss evaluations.")
    save_every: int = Field(50, gt=0, description="Steps between resumable checkpoints.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Training precision: auto = bfloat16 where the hardware runs it natively (CUDA with bf16, CPUs "
        "with AMX/AVX512-BF16), else float32. With bf16 the frozen base and activations are bf16 while LoRA "
        "weights, optimizer state and the loss stay float32 (full fine-tuning keeps float32 weights under autocast).",
    )

    @field_validator("dtype", mode="before")
    @classmethod
    def _no_float16_training(cls, value: object) -> object:
        if value == "float16":
            raise ValueError(
                "training in float16 would need loss scaling and is not supported; use bfloat16, float32 or auto"
            )
        return value

    gradient_checkpointing: bool = Field(
        True,
        description="Recompute layer activations in the backward pass: less memory (bf16 translate-en-es: 3.0 vs "
        "4.0 GB peak), ~25% slower.",
    )
    quantization: Literal["none", "4bit"] = Field(
        "none", description="4bit = QLoRA (NF4 base via bitsandbytes; needs a CUDA GPU). none = full-precision base."
    )
    lora: LoraSection = Field(default_factory=LoraSection)


class EvalSection(Section):
    few_shot: int = Field(3, ge=0, description="Example pairs in the prompt when scoring the base model.")
    batch_size: int = Field(
        32,
        gt=0,
        description="Sentences translated per batch (decoding is memory-bound on CPU: big batches are nearly free).",
    )
    num_beams: int = Field(1, gt=0, description="1 = greedy; more = beam search.")
    max_new_tokens: int = Field(
        160, gt=0, description="Longest translation in tokens (each sentence is also capped at 2x its source + 16)."
    )
    limit: int | None = Field(None, gt=0, description="Score only the first N test sentences.")
    forgetting_threshold: float = Field(2.0, ge=0, description="General-domain chrF drop that counts as forgetting.")
    report_samples: int = Field(20, ge=0, description="Sample outputs shown in the report.")
    mcq_modes: list[Literal["loglik", "generate"]] = Field(
        default_factory=lambda: ["loglik", "generate"],
        description="How multiple-choice accuracy is scored (task qa): option-letter log-likelihood and/or "
        "generated answers.",
    )
    max_length: int = Field(
        1024, gt=8, description="Longest evaluation prompt in tokens (MCQ context is cut from the left to fit)."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Precision of evaluation and generation: auto = bfloat16 where the hardware runs it natively, "
        "else float32; float16 for GPUs without bf16.",
    )
    preference_data: str | None = Field(
        None,
        description="pipeline rlaif: a held-out preference file (prompt/chosen/rejected) for preference accuracy; "
        "unset: the pairs held out by pairs.heldout.",
    )


class SftSection(Section):
    """The SFT stage of an rlaif pipeline; every other train.* key (method, LoRA, batch size, lengths, dtype) is shared."""

    epochs: float = Field(1.0, gt=0, description="pipeline rlaif: SFT passes over the training data.")
    max_steps: int | None = Field(None, gt=0, description="pipeline rlaif: SFT optimizer steps; overrides sft.epochs.")
    lr: float = Field(2e-4, gt=0, description="pipeline rlaif: SFT peak learning rate.")


class GenerateSection(Section):
    """Candidate answers for preference pairs (pipeline rlaif)."""

    n: int = Field(4, ge=2, description="Candidate answers sampled per prompt.")
    temperature: float = Field(0.7, gt=0, description="Sampling temperature of the candidates.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling: keep the most likely tokens up to this mass.")
    max_new_tokens: int = Field(
        256, gt=0, description="Longest candidate in tokens (candidate length drives the run time)."
    )
    batch_size: int = Field(16, gt=0, description="Prompts generated per batch by the local model.")
    cache: Literal["dynamic", "static"] = Field(
        "dynamic",
        description="The local model's key/value cache: dynamic (faster on CPU) or static (preallocated; same "
        "candidates; needed by generate.compile).",
    )
    compile: bool = Field(
        False,
        description="torch.compile the local model's decoding step (needs generate.cache=static; same candidates; "
        "each new batch shape compiles first).",
    )
    max_prompts: int | None = Field(
        None, gt=0, description="Generate for at most this many training prompts (a seeded sample); unset: all."
    )
    endpoint: str | None = Field(
        None,
        description="An OpenAI-compatible URL (e.g. http://127.0.0.1:8000/v1) serving the policy; unset: the SFT "
        "model generates locally.",
    )
    endpoint_model: str | None = Field(None, description="Model name to ask generate.endpoint for.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding generate.endpoint's API key (never the key)."
    )
    concurrency: int = Field(8, gt=0, description="Requests in flight at once against generate.endpoint.")


class JudgeSection(Section):
    """Who scores the candidates (pipeline rlaif)."""

    kind: Literal["reference", "llm", "ensemble"] = Field(
        "reference",
        description="reference (offline: the option letter against the gold one, or similarity and key-point "
        "coverage against a reference text; translation: sentence chrF++ against the reference), llm (a rubric "
        "prompt to judge.endpoint) or ensemble (a weighted combination).",
    )
    endpoint: str | None = Field(None, description="OpenAI-compatible URL of the llm judge.")
    model: str | None = Field(None, description="Model name of the llm judge (at judge.endpoint).")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding judge.endpoint's API key (never the key)."
    )
    weights: dict[str, float] | None = Field(
        None,
        description="Weights of the judge's parts, e.g. {similarity: 0.7, coverage: 0.3} (reference) or "
        "{reference: 0.5, llm: 0.5} (ensemble); unset: the judge's defaults.",
    )
    glossary: str | None = Field(None, description="Term list whose terms count as key points (reference judge).")


class PairsSection(Section):
    """Preference pairs from judged candidates (pipeline rlaif)."""

    margin: float = Field(
        0.1, ge=0, description="Smallest score gap between chosen and rejected; smaller gaps are ties."
    )
    heldout: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Share of prompts whose pairs are kept out of preference training: the dev loss while training, "
        "and the held-out preference accuracy when eval.preference_data is unset.",
    )


class FeedbackSection(Section):
    """Human feedback (pipelines feedback_rlhf, feedback_reward and full_training): where judgments live, how they train."""

    db: str | None = Field(
        None,
        description="The feedback store: a SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...) or a SQLite file "
        "path; unset: feedback.db in the current folder (pipeline full_training: <run_dir>/feedback.db).",
    )
    project: str | None = Field(None, description="The feedback project to read or fill; unset: the recipe name.")
    objective: Literal["kto", "dpo", "reward-weighted"] = Field(
        "kto",
        description="How judgments train the model: kto (a translation is desirable when its mean score reaches "
        "feedback.threshold), dpo (post-edit chosen over machine output, where they differ) or reward-weighted "
        "(the online rlhf_update rule, batched: advantage = score - feedback.baseline).",
    )
    threshold: float = Field(
        0.5, ge=0, le=1, description="objective kto: a mean score at or above this makes a translation desirable."
    )
    kl_coef: float = Field(
        0.1,
        ge=0,
        description="objective reward-weighted: weight of the KL penalty to the starting model (0 turns it off).",
    )
    baseline: float = Field(
        0.5, ge=0, le=1, description="objective reward-weighted: the starting baseline subtracted from each score."
    )
    reviewers: Literal["simulated", "human"] = Field(
        "simulated",
        description="pipeline full_training: who judges the queued translations: simulated (sentence chrF++ against "
        "the reference, post-edit = reference; offline) or human (the run stops after queueing until reviewers "
        "have judged the feedback set; then --resume).",
    )
    items: int = Field(
        96, gt=0, description="pipeline full_training: sentences held apart from train and test as the feedback set."
    )
    reviewers_per_item: int = Field(1, gt=0, description="Different reviewers who judge each queued translation.")
    heldout: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Share of judged items kept out of feedback training, for the report (post-edit preference "
        "margin, chrF++ against post-edits) and the reward model's held-out Spearman and pairwise accuracy.",
    )
    pairwise_weight: float = Field(
        0.0,
        ge=0,
        description="pipeline feedback_reward: weight of a Bradley-Terry loss on the pairs of items in a training "
        "batch whose mean scores differ (the higher-scored should get the higher reward), added to the squared error "
        "on each item's mean score; 0: regression only.",
    )


class Recipe(Section):
    """A whole recipe: which model, which data, how to train and how to judge."""

    name: str = Field(description="Run name; the run folder is runs/<name> unless run_dir is set.")
    task: Literal["translation", "chat", "qa", "pretrain"] = Field(
        description="What the recipe trains: translation (pairs), chat (conversation SFT), qa (medical question "
        "answering SFT, scored on multiple-choice questions), pretrain (continued pre-training on raw text)."
    )
    pipeline: Literal["before_after", "rlaif", "feedback_rlhf", "feedback_reward", "full_training"] = Field(
        "before_after",
        description="before_after: score the base, fine-tune, score again. rlaif (tasks qa and translation): SFT, "
        "candidates, judge, preference pairs, DPO/KTO, then base/SFT/preference-tuned compared. feedback_rlhf "
        "(translation): train from reviewers' judgments in the feedback store. feedback_reward (translation): a "
        "reward model on the judgments. full_training (translation): SFT, queue, a feedback round, RLHF, "
        "evaluation after each step.",
    )
    description: str = Field("", description="One line shown by 'medtune recipes'.")
    model: str = Field("gemma-3-270m", description="Base model: gemma-3-270m, a hub id or a local folder.")
    seed: int = Field(42, description="Seed for splits, data order, dropout and sampling.")
    device: str = Field(
        "auto",
        description="Where training and evaluation run: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.",
    )
    run_dir: str | None = Field(None, description="Run folder for data splits, evaluations and reports.")
    output_dir: str | None = Field(None, description="Where the trained model goes (default <run_dir>/model).")
    data: DataSection
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    sft: SftSection = Field(default_factory=SftSection)
    generate: GenerateSection = Field(default_factory=GenerateSection)
    judge: JudgeSection = Field(default_factory=JudgeSection)
    pairs: PairsSection = Field(default_factory=PairsSection)
    feedback: FeedbackSection = Field(default_factory=FeedbackSection)

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError("expected auto, cpu, cuda, cuda:0 (any GPU number) or mps")
        return value

    @field_validator("pipeline")
    @classmethod
    def _rlaif_tasks(cls, value: str, info: ValidationInfo) -> str:
        task = info.data.get("task")
        if value == "rlaif" and task not in ("qa", "translation", None):
            raise ValueError(f"pipeline rlaif runs tasks qa and translation, not task {task!r}; use before_after")
        return value

    @model_validator(mode="after")
    def _fill_dirs(self) -> Recipe:
        if self.run_dir is None:
            self.run_dir = f"runs/{self.name}"
        if self.output_dir is None:
            self.output_dir = f"{self.run_dir}/model"
        return self
