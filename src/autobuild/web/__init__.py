"""The web layer: FastAPI routes, templates and static files; ``create_app`` wires everything."""
