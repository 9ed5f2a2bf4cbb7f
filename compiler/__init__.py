"""fewmul.compiler"""
