"""`minibert serve`: an HTTP server for sentence vectors, classification and reranking.

A framework-free ASGI application (app.py) that uvicorn runs (server.py), in layers that
keep the model apart from the transport:

    settings.py   the options, shared by every worker process (their threads: kernels/threads.py)
    model.py      a model folder ready to serve: tokenize apart from run, pooled vectors, logits
    scheduler.py  one worker thread, token-budgeted batches of sequences from many requests
    selfcheck.py  the golden vector /ready waits for
    schemas.py    request bodies checked field by field; the one JSON error shape
    messages.py   a request and a response, and the ASGI messages that carry them
    routes.py     each route: parse, tokenize, queue, format
    app.py        routing, limits, API key, timing headers, access log, lifespan
    metrics.py    Prometheus text format; openapi.py the OpenAPI document; page.py the page at /

The API it speaks is OpenAI's embeddings API at /v1/embeddings and Hugging Face TEI's at
/embed, /predict, /rerank and /tokenize (see routes.py). The package imports nothing itself:
`from minibert.serve.app import ServeApp`, so that the CLI can read settings.py's defaults
without loading a model.
"""
