"""Ray job entrypoints: what ``ray job submit`` runs."""
