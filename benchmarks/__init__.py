"""Side-by-side measurements of sysid against the code a user would otherwise write."""
