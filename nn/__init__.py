"""fewmul.nn"""
