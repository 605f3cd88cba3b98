"""The support console: find a link, see everything that happened to it, act on it."""
