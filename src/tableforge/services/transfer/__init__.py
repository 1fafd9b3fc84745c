"""Moving rooms between servers: `tableforge export` / `tableforge import` (one portable room file)."""
