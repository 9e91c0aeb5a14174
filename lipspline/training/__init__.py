"""Training: ``fit`` (the loop), the data it reads (in memory or streamed), the plan for a dataset,
the learning-rate schedule, convergence, config checks, and the certified robust accuracy of a run."""
