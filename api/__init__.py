"""Self-hosted platform for customising local LLMs: variants, retrieval, fine-tuning, serving."""
