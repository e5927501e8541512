"""HTTP front end: ASGI app, request pipeline (route, authenticate, parse, authorize, dispatch)."""
