"""Teacher annotation: reasoning rationales for robot trajectories (ReFineVLA step one).

Installed with the `teacher` extra. `refinevla-bench annotate` runs a teacher (`grounded`,
offline; `openai`, any OpenAI-compatible endpoint) over a dataset through one engine
(`engine.py`), scores each rationale against the recording (`consistency.py`), and writes the
sidecar table and the merged dataset the trainer reads (`outputs.py`).
"""
