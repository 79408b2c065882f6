"""Placeholder: the sampler node family is added by its issue."""

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
