"""``modules/ui_components.py`` (A1111 1.7 and later, Forge): ``InputAccordion``, a checkbox shown in an
accordion's header; entered as a context manager, it is the accordion the controls go into."""

import gradio as gr


class InputAccordion(gr.Checkbox):
    def __init__(self, value, **kwargs):
        self.accordion_label = kwargs.pop("label", None)
        super().__init__(value, label=self.accordion_label, **kwargs)
        self.accordion = gr.Accordion(self.accordion_label, open=False)

    def __enter__(self):
        self.accordion.__enter__()
        return self

    def __exit__(self, *exc):
        return self.accordion.__exit__(*exc)
