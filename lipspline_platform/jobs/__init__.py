"""Jobs: their lifecycle (the one writer of a job's status), events, the queue, the reconciler and the
workers' background threads, and the queries the API lists jobs with."""
