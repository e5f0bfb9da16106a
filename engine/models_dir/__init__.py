"""models_dir"""
