from . import ksefnet_document_reports
