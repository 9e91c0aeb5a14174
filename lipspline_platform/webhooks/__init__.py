"""Webhooks: events POSTed, signed, to the tenant's endpoints (and a job's final event to its ``notify_url``).

The events: a job's end, a sweep's end, a registry version created, an alias moved; each one's
payload is a contract in ``api_schemas/webhook_events.py``.

``targets`` decides which URLs may receive (and resolves each once), ``signing`` signs
(HMAC-SHA256 over timestamp and body), ``outbox`` stores what is to be sent in the transaction of the
change it reports and records every attempt, ``transport`` sends one request to the checked
addresses within one deadline, and ``dispatcher`` sends what is due from a thread of every
API and worker process, never inside a request and never holding a lock that training or a
fork waits on.
"""
