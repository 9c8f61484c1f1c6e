"""Scale-out (``serve --ray``): one job spread over several generator replicas on Ray Serve.

Ray-free, tested alone: ``units`` cuts a job into work units that keep what each pipeline needs
together; ``scaled_queue`` is the job queue that runs units on replicas concurrently and publishes
the frames in job order; ``local_replica`` runs a unit on loaded models; ``replica_service`` streams
a unit's steps and frames back from a replica process; ``options`` reads the flags.
Ray's side: ``ray_app`` (the ingress and generator deployments, and the config file's builder)
and ``launch`` (starting or joining the cluster and running the application).
"""
