"""llama.cpp in process: GGUF checks, safe CPU paths, loading and guarding models."""
