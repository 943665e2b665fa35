"""Helpers that more than one test module uses: builders, doubles and waiters.

Test modules import from here, never from each other (the FastAPI template's
`tests/utils/`). One module per subject:

- net: free_port, the one way tests pick a loopback port;
- tiny_model: the tiny random-weight Llama base (and its session fixture), training data;
- pdfs: real PDFs written by the tests, hostile ones included;
- jobs: submit a fine-tuning job through the API, wait for it, read its events;
- runner: a queued job and a JobRunner whose child process does nothing;
- devices: TrainingDevice values for a CPU host, an H200 and broken CUDA set-ups;
- api_process: the API as a real uvicorn process (SIGKILL and restart);
- service_process: the `service` fixture, the API as `make run` starts it, with a key;
- chroma: a real Chroma server on a loopback port;
- ollama_double: a protocol double of the Ollama server; ollama_app: the app against it;
- fake_server: FakeServer, a ModelServer that replies from a script (fast route tests).
"""
