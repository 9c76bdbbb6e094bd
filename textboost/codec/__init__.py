"""The learned codec: transforms, exact entropy parameters, entropy coding, container."""
