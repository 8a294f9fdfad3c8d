"""Running a sweep: plan -> schedule -> run one job -> store.

plan       Sweep and Job: what to run, resolved and validated before anything starts (profiles,
           options, sweepfile feed it)
schedule   which jobs are still to do, handing them to a backend, clean stops on signals
backends   where jobs run: this process, local child processes, a dask cluster
job        one job: load the data, fit, predict, score; returns a record and predictions
store      (harness.store) the run folder the scheduler writes
"""
