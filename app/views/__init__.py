"""Blueprints. Views are thin: parse the request, call a service, render."""

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from ..api import bp as api_bp
    from .accounts import bp as accounts_bp
    from .admin import bp as admin_bp
    from .gallery import bp as gallery_bp
    from .gate import bp as gate_bp
    from .logs import bp as logs_bp
    from .owner import bp as owner_bp
    from .publish import bp as publish_bp
    from .stats import bp as stats_bp
    from .tokens import bp as tokens_bp
    from .viz import bp as viz_bp

    app.register_blueprint(accounts_bp)
    app.register_blueprint(publish_bp)
    app.register_blueprint(gallery_bp)
    app.register_blueprint(viz_bp)
    app.register_blueprint(gate_bp)
    app.register_blueprint(logs_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(owner_bp)
    app.register_blueprint(stats_bp)
    app.register_blueprint(tokens_bp)
    app.register_blueprint(api_bp)
