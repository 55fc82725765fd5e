"""The labelling web app (FastAPI): pages, authentication, tokens, images."""
