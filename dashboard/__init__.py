"""The dashboard served at /admin/queues: Jinja2 templates and static ES modules (build.py)."""
