"""The example composite, the template pictures and the scripts that make them."""
