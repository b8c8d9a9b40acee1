"""The op registry (`registry`), its primitives (`primitives`), and the user-facing functions (`functions`)."""
