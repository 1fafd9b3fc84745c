from tableforge.cli import app

app()
