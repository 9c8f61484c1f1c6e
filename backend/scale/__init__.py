"""Scale-out: one job spread over several generator replicas (issue 12).

``units`` cuts a job into work units that keep what each pipeline needs together; ``scaled_queue``
is the job queue that runs those units on replicas concurrently and publishes the frames in job
order; ``local_replica`` is a replica in this process (the tests' and the Ray deployment's core).
"""
