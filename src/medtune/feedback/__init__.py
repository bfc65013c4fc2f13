"""Human feedback for translation: the feedback store, the reviewer web app, and RLHF from reviewers' judgments."""
