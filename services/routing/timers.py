"""A nameko timer whose interval comes from the service's config (tests tick fast)."""

from nameko.timer import Timer


class ConfigTimer(Timer):
    def __init__(self, setting: str, default: float, **kwargs):
        self.setting = setting
        super().__init__(interval=default, **kwargs)

    def setup(self):
        self.interval = float(self.container.config.get(self.setting, self.interval))
        super().setup()


config_timer = ConfigTimer.decorator
