"""Pixels, at the ground floor: image files -> RGB arrays, and the resizing, cropping and scaling
each model's input needs, in Pillow and NumPy (no torch), so models and sinks share one path."""
