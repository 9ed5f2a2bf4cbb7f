"""fewmul.boards"""
