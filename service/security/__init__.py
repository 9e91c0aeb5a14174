"""Who is asking and what they may do: API keys, scopes, the request's tenant, ownership checks."""
