"""Dash demo with its own packages: the iris data set drawn with
``plotly.express``, which needs pandas. Dormouse installs what
``requirements.txt`` beside this file lists into the app's own environment
(built with uv when the app is published); Dormouse's own environment is not
touched. The figure's title shows the pandas version, so a page can tell.

Run under any WSGI server with ``server`` as the callable (``gunicorn
app:server``); locally, ``python app.py`` serves it at http://127.0.0.1:8050/.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
from dash import Dash, dcc, html

app = Dash(__name__, title="Iris - Dormouse demo")
server = app.server  # the WSGI callable

iris = px.data.iris()  # a pandas DataFrame
figure = px.scatter(
    iris,
    x="sepal_width",
    y="sepal_length",
    color="species",
    title=f"Iris sepals ({len(iris)} flowers, pandas {pd.__version__})",
)

app.layout = html.Div(
    id="iris-page",
    children=[
        html.H1("Iris", id="iris-title"),
        html.P(f"{len(iris)} flowers of {iris['species'].nunique()} species, drawn with plotly.express."),
        dcc.Graph(id="iris-graph", figure=figure),
    ],
)

if __name__ == "__main__":
    app.run(debug=False)
