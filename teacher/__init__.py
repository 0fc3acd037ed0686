"""Teacher annotation: reasoning rationales for robot trajectories (ReFineVLA step one).

Installed with the `teacher` extra (openai, pydantic). The annotation engine arrives with its
own issue; this package reserves the import name `refinevla_bench.teacher`.
"""
