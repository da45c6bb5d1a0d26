"""The orchestrator: state in the database, idempotent steps in workers.

Three kinds of step, each a django-q2 task (runs/tasks.py) that any worker may run, any number of times:

- ``advancing.advance_run(run)``: under a row lock on the run, admits pending runs when parallelism allows,
  decides for each waiting task whether its parents let it run, hands the tasks that may start to
  ``drive_task_execution``, applies cancellation and the global run timeout, and completes the run;
- ``driving.drive_task_execution(task execution)``: under a lease, starts (or adopts) the container, then for one
  time slice pumps its logs, enforces its timeout and cancellation, and records its exit;
- ``reconciling.reconcile()``: re-drives what nobody drives, admits, prunes.

One module per concern, each readable on its own:

| module | owns |
|---|---|
| ``admission`` | which pending runs start, and what starting one creates (task executions, run token) |
| ``advancing`` | moving a run forward: depends_on, skips, cancellation, the global timeout, completion |
| ``driving`` | starting, watching and stopping one task execution's container on its engine |
| ``leases`` | owning an active task execution, and keeping the lease through long calls |
| ``outcomes`` | recording how a task execution or a run ended, once |
| ``masking`` | each task execution's log masker, built once |
| ``retention`` | deleting old runs' logs |
| ``pruning`` | deleting old containers and events |
| ``reconciling`` | the periodic sweep that makes the above crash-safe |

Why this survives crashes: the container name is derived from the task execution, so a second start adopts the
first container instead of running the task twice; the engine and the container id are recorded as soon as they
are known; log pumping resumes from the cursor stored in the log file itself; every state change is a conditional
update that only the lease holder (or the run-lock holder) can make.
"""
