"""HTTP services: `model_server` serves a local policy over the OpenAI API (`greenloop
serve-model`); the verifier as an HTTP service belongs here too.

Nothing is imported here: fastapi and uvicorn load with the module that needs them.
"""
