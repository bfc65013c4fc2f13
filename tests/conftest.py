"""Shared fixtures: tiny randomly initialised models built in the test session (no downloads).

* ``tiny_tokenizer``: a 500-token byte-level BPE trained on the demo corpus, ``<bos>`` prepended.
* ``tiny_gemma_dir``: a 2-layer Gemma 3 causal LM (35k parameters) saved with that tokenizer.
* ``tiny_marian_dir``: a 2+2-layer Marian translation model with sentencepiece vocabularies
  trained on the English and Spanish sides of the demo corpus.

Each builds in a second or two on CPU; they are session-scoped so the whole suite pays once.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from demo_rows import DEMO_MEDICAL, demo_records  # noqa: F401 (re-exported for older tests)

from medtune.data.demo import DEMO_DIR
from medtune.data.parallel import Pair

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>"]


def pytest_configure(config):
    # Tiny models are fastest on one thread (many threads only contend), and one thread keeps
    # floating-point reductions in a fixed order.
    torch.set_num_threads(1)
    # MarianTokenizer asks for sacremoses, which only matters for real Marian preprocessing.
    config.addinivalue_line("filterwarnings", "ignore:Recommended. pip install sacremoses:UserWarning")


@pytest.fixture(scope="session")
def demo_pairs() -> list[Pair]:
    """The first 64 pairs of the bundled medical corpus."""
    return [Pair(r["en"], r["es"], r.get("doc_id")) for r in demo_records(64)]


def _train_byte_level_bpe(texts: list[str], vocab_size: int, extra_special: list[str] | None = None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS + (extra_special or []),
        # the full byte alphabet, so every string (including "\n" -> "Ċ") is representable
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)]
    )
    return tok


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A byte-level BPE tokenizer (vocabulary 500) that prepends ``<bos>`` like Gemma's."""
    from transformers import PreTrainedTokenizerFast

    texts = [f"English: {r['en']}\nSpanish: {r['es']}\n" for r in demo_records(400)]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_byte_level_bpe(texts, vocab_size=500),
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    assert any("\n" in tokenizer.convert_tokens_to_string([t]) for t in tokenizer.get_vocab())
    return tokenizer


def build_tiny_gemma(tokenizer, seed: int = 0, **overrides):
    """A 2-layer Gemma 3 text model sized for tests, with fixed random weights."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    settings = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    settings.update(overrides)
    torch.manual_seed(seed)
    return Gemma3ForCausalLM(Gemma3TextConfig(**settings)).eval()


@pytest.fixture(scope="session")
def tiny_gemma_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A folder with a tiny Gemma 3 causal LM and its tokenizer, loadable by ``load_model``."""
    folder = tmp_path_factory.mktemp("tiny-gemma")
    build_tiny_gemma(tiny_tokenizer).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_chatml_dir(tmp_path_factory, tiny_gemma_dir) -> Path:
    """The tiny Gemma saved with a ChatML chat template on its tokenizer (the markers are plain text to it)."""
    import shutil

    from transformers import AutoTokenizer

    from medtune.data.chat_template import CHATML_CHAT_TEMPLATE

    folder = tmp_path_factory.mktemp("tiny-gemma-chatml")
    shutil.copytree(tiny_gemma_dir, folder, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_gemma_dir))
    tokenizer.chat_template = CHATML_CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_chat_gemma_dir(tmp_path_factory) -> Path:
    """A tiny Gemma 3 whose tokenizer has Gemma's turn tokens but, like the embedded base model, no
    chat template: medtune must recognise the family and supply the template itself."""
    from transformers import PreTrainedTokenizerFast

    texts = [m["content"] for r in _demo_dialogues() for m in r["messages"]]
    tok = _train_byte_level_bpe(texts, vocab_size=600, extra_special=["<start_of_turn>", "<end_of_turn>"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    folder = tmp_path_factory.mktemp("tiny-chat-gemma")
    build_tiny_gemma(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _demo_dialogues() -> list[dict]:
    path = DEMO_DIR / "doctor_patient_dialogues.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def tiny_marian_dir(tmp_path_factory) -> Path:
    """A folder with a tiny Marian EN->ES model and a MarianTokenizer built from sentencepiece models."""
    import sentencepiece as spm
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    work = tmp_path_factory.mktemp("tiny-marian-spm")
    records = demo_records()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for side in ("en", "es"):
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter([r[side] for r in records]),
            model_prefix=str(work / side),
            vocab_size=200,
            model_type="unigram",
            character_coverage=1.0,
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            minloglevel=2,
        )
        processor = spm.SentencePieceProcessor(model_file=str(work / f"{side}.model"))
        for i in range(processor.get_piece_size()):
            vocab.setdefault(processor.id_to_piece(i), len(vocab))
    (work / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = MarianTokenizer(
            str(work / "en.model"), str(work / "es.model"), str(work / "vocab.json"), source_lang="en", target_lang="es"
        )
    config = MarianConfig(
        vocab_size=len(tokenizer),
        decoder_vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-marian")
    MarianMTModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def medtune_home(tmp_path, monkeypatch) -> Path:
    """Point ``$MEDTUNE_HOME`` at a temporary folder so no test touches the user's cache."""
    home = tmp_path / "medtune-home"
    monkeypatch.setenv("MEDTUNE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def medtune_server(tiny_chatml_dir, tmp_path_factory):
    """``medtune serve`` on the tiny ChatML Gemma (float32, CPU) in a subprocess on a free loopback port.

    Yields a ``live_server.LiveServer``: ``base_url`` (``http://127.0.0.1:PORT/v1``), ``api_key``
    (``"test-key"``, required on every request), ``model`` (the served name: the model folder). Batches
    gather requests for up to 50 ms. Killed at the end of the session.
    """
    from live_server import start_medtune_serve, stop_medtune_serve

    log = tmp_path_factory.mktemp("medtune-serve") / "server.log"
    server = start_medtune_serve(tiny_chatml_dir, log, "test-key", "--dtype", "float32", "--batch-wait-ms", "50")
    yield server
    stop_medtune_serve(server)
