"""fewmul.sim"""
