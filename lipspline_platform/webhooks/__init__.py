"""Webhooks: a job's final event POSTed, signed, to its ``notify_url`` and the tenant's endpoints.

``targets`` decides which URLs may receive (and resolves each once), ``signing`` signs
(HMAC-SHA256 over timestamp and body), ``outbox`` stores what is to be sent in the job's own
transaction and records every attempt, ``transport`` sends one request to the checked
addresses within one deadline, and ``dispatcher`` sends what is due from a thread of every
API and worker process, never inside a request and never holding a lock that training or a
fork waits on.
"""
