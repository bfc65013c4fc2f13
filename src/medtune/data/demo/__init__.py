"""Bundled demo corpora written for medtune: medical EN-ES pairs, a glossary, general-domain pairs.

Recipes refer to these files as ``demo:<file name>``.
"""

from pathlib import Path

DEMO_DIR = Path(__file__).parent
