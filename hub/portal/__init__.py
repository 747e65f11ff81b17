"""The Mission Portal: the web server every hubd runs (health endpoints, pages, API)."""
