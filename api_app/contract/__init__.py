"""The API's contract: what each route takes and answers, served as OpenAPI at /openapi.json.

Each route carries its own part (`documented`, in meta.py) next to its code; document.py walks
the Chalice app's routes and builds the document from those parts and the pydantic models."""
