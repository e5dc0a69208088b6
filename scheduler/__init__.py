"""The daemon: leader lock, scheduling maths, APScheduler wiring, run engine."""
