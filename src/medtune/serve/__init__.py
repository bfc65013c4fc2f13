"""``medtune serve``: an OpenAI-compatible HTTP server over medtune's generation engine (see ``app.py``)."""
