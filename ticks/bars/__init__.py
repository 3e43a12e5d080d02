"""Bars and history: live 1-minute bars from the feed, Kite's candles, pandas resampling (README "Bars")."""
