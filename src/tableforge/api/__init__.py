"""HTTP routes, the /ws endpoint and admin: parse, authorize, call a service, shape the reply."""
