"""Dash demo for Dormouse: a sine wave whose frequency follows a slider.

Run under any WSGI server with ``server`` (the Flask app inside Dash) as the
callable, e.g. ``gunicorn app:server``. The URL prefix is *not* hardcoded: Dash
reads ``DASH_ROUTES_PATHNAME_PREFIX`` (where routes live on this server) and
``DASH_REQUESTS_PATHNAME_PREFIX`` (what the browser puts in front of its AJAX
calls) from the environment itself, and Dormouse's local backend sets both to
the deployment's prefix (``/<owner>/<title>/<public_name>/``).

Locally, ``python app.py`` serves it at http://127.0.0.1:8050/.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html

POINTS = 400
PERIODS = 2  # how much of the x axis to draw, in units of 2*pi

app = Dash(__name__, title="Sine wave - Dormouse demo")
server = app.server  # the WSGI callable

_PAGE = {
    "fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    "maxWidth": "860px",
    "margin": "0 auto",
    "padding": "24px 16px",
    "color": "#1f2933",
}

app.layout = html.Div(
    style=_PAGE,
    children=[
        html.H1("Sine wave", style={"margin": "0 0 4px", "fontWeight": 600}),
        html.P(
            "Move the slider to change the frequency; the plot is redrawn by a "
            "Python callback on the server.",
            style={"margin": "0 0 20px", "color": "#52606d"},
        ),
        html.Label("Frequency (cycles per 2\u03c0)", htmlFor="frequency"),
        dcc.Slider(
            id="frequency",
            min=1,
            max=10,
            step=0.5,
            value=2,
            marks={i: str(i) for i in range(1, 11)},
            updatemode="drag",
        ),
        dcc.Graph(id="wave", config={"displaylogo": False}, style={"height": "420px"}),
    ],
)


def wave_figure(frequency: float) -> go.Figure:
    """A figure of ``sin(frequency * x)`` over ``PERIODS`` periods of 2*pi."""
    span = 2 * math.pi * PERIODS
    xs = [span * i / (POINTS - 1) for i in range(POINTS)]
    ys = [math.sin(frequency * x) for x in xs]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", line={"width": 3, "color": "#3e7cb1"}))
    fig.update_layout(
        template="plotly_white",
        title={"text": f"y = sin({frequency:g}\u00b7x)", "x": 0.5},
        margin={"l": 40, "r": 20, "t": 60, "b": 40},
        xaxis_title="x",
        yaxis={"title": "y", "range": [-1.1, 1.1]},
    )
    return fig


@app.callback(Output("wave", "figure"), Input("frequency", "value"))
def redraw(frequency: float | None) -> go.Figure:
    """Redraw the wave whenever the slider moves."""
    return wave_figure(float(frequency or 1))


if __name__ == "__main__":
    app.run(debug=False)
