"""Robot datasets in and out: the LeRobot format (written by `collect`, read from disk), RLDS/TFDS
directories (the Open X-Embodiment originals), and one episode view for everything downstream."""
