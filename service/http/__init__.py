"""HTTP plumbing every route shares: middleware (trailing slash, body size, request context),
problem+json errors, query and body parsing, pagination, idempotency, rate limits, request metrics and
the OpenAPI and /docs pages."""
