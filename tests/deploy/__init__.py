"""Static checks of the Google Cloud deployment in deploy/, one module per concern; terraform.py parses it."""
