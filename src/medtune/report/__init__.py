"""Reports: HTML and Markdown before/after reports, plots and model cards."""
