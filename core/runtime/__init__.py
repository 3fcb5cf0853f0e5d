"""Runtime: what every run needs around the models.

device (CUDA > MPS > CPU, OOM guard, CPU threads), scheduler (one FIFO per device, time
limits, queue cap), health (liveness, readiness, the job log), validation (every user
input checked, one error type), offline (no model hub at run time) and recorded (readers
of bench/results). Imports nothing heavy at package level.
"""
