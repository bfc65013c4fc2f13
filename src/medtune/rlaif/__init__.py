"""RLAIF data: prompts (prompt_items), sampled candidate answers (candidates, dedupe) and preference pairs (pairs)."""
