"""A tiny OpenVLA (Prismatic) checkpoint's code: configuration, model and image processor."""
